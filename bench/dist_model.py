#!/usr/bin/env python3
"""The scaling model of docs/distributed.md: step time and efficiency of data-parallel
training on P machines, from the compute time of one step on one machine and the bytes of
gradients allreduced per step.

    ring allreduce:  T_ar = 2 (P-1)/P x G / BW  +  2 (P-1) x buckets x alpha
    no overlap:      T    = T_c + T_ar
    overlap:         T    = max(T_c + T_ar / buckets,  T_c / 3 + T_ar)
                     (the buckets move while the backward pass, about 2/3 of T_c, runs; the
                     last bucket, the first layers' gradients, only after it)
    efficiency       E    = T_c / T;  images/s = P x batch / T

usage: dist_model.py [--alpha-us 25] [--eff 0.9]
"""
import argparse

NETS = {
    # name: (gradient bytes, buckets, seconds per example of one training step on one thread:
    #        the median step of bench/bench_dist at batch 32 (resnet20: 224 ms over 7 runs;
    #        vgg16 at batch 2: the less loaded of two runs, 3.86 s, 8.69 s in the other))
    "resnet20": (272474 * 4, 4, 0.224 / 32),
    "vgg16": (138357544 * 4, 139, 3.86 / 2),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--alpha-us", type=float, default=25.0, help="latency per message step (TCP: 10-50 us)")
    ap.add_argument("--eff", type=float, default=0.9, help="share of the line rate TCP reaches")
    ap.add_argument("--batch", type=int, default=32, help="examples per process and step")
    a = ap.parse_args()
    alpha = a.alpha_us * 1e-6
    for name, (g, nb, t_ex) in NETS.items():
        for speedup, what in ((1, "one thread of this machine (measured)"), (30, "a node 30x faster")):
            tc = a.batch * t_ex / speedup
            print(f"\n{name}: {g / 1e6:.2f} MB of gradients in {nb} buckets, batch {a.batch} per process, "
                  f"{what}: T_c = {tc * 1e3:.1f} ms")
            print(f"{'Gbit/s':>7} {'P':>4} {'T_ar ms':>9} {'E no overlap':>13} {'E overlap':>10} {'images/s':>10}")
            for gbit in (10, 25, 100):
                bw = gbit / 8 * 1e9 * a.eff
                for p in (2, 8, 64):
                    tar = 2 * (p - 1) / p * g / bw + 2 * (p - 1) * nb * alpha
                    t_no = tc + tar
                    t_ov = max(tc + tar / nb, tc / 3 + tar)
                    print(f"{gbit:>7} {p:>4} {tar * 1e3:>9.2f} {tc / t_no:>13.3f} {tc / t_ov:>10.3f} "
                          f"{p * a.batch / t_ov:>10.1f}")


if __name__ == "__main__":
    main()
