# Times one of the example networks in PyTorch (Debian's python3-torch, run with /usr/bin/python3)
# as bench/compare needs it: inference through TorchScript (traced, frozen, optimize_for_inference,
# PyTorch's fastest CPU path) or a training step in eager mode (cross entropy, SGD with momentum
# 0.9, as `cnnc bench --train` runs it).  Prints {"ms": median, "min": .., "max": ..} per batch.
#   /usr/bin/python3 bench/peers/torch_bench.py NET --batch N --threads T [--repeat R] [--train]
import argparse, json, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.f = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                               nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                               nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                               nn.Linear(84, 10))

    def forward(self, x):
        return self.f(x)


def vgg_small():
    layers, cin = [], 3
    for w in (64, 128, 256):
        layers += [nn.Conv2d(cin, w, 3, padding=1), nn.ReLU(), nn.Conv2d(w, w, 3, padding=1), nn.ReLU(),
                   nn.MaxPool2d(2)]
        cin = w
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(256 * 16, 256), nn.ReLU(), nn.Linear(256, 10))


class Basic(nn.Module):
    def __init__(self, cin, w, stride):
        super().__init__()
        self.y = nn.Sequential(nn.Conv2d(cin, w, 3, stride, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
                               nn.Conv2d(w, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w))
        self.s = (nn.Sequential(nn.Conv2d(cin, w, 1, stride, bias=False), nn.BatchNorm2d(w))
                  if stride != 1 or cin != w else nn.Identity())

    def forward(self, x):
        return F.relu(self.y(x) + self.s(x))


def resnet20():
    layers, cin = [nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU()], 16
    for w, stride in ((16, 1), (32, 2), (64, 2)):
        for k in range(3):
            layers.append(Basic(cin, w, stride if k == 0 else 1))
            cin = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


NETS = {'lenet5': (LeNet5, (1, 28, 28)), 'vgg_small': (vgg_small, (3, 32, 32)),
        'resnet20': (resnet20, (3, 32, 32))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('net', choices=sorted(NETS))
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--repeat', type=int, default=10)
    ap.add_argument('--train', action='store_true')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    make, shape = NETS[a.net]
    model = make()
    x = torch.rand(a.batch, *shape) * 2 - 1
    if a.train:
        model.train()
        labels = torch.arange(a.batch) % 10
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def run():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), labels).backward()
            opt.step()
    else:
        model.eval()
        with torch.no_grad():
            traced = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, x)))

        def run():
            with torch.no_grad():
                traced(x)
    for _ in range(3):
        run()
    times = []
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    print(json.dumps({'ms': times[len(times) // 2], 'min': times[0], 'max': times[-1]}))


if __name__ == '__main__':
    sys.exit(main())
