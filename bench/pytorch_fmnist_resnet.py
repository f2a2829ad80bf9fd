# The PyTorch twin of `cnnc train examples/recipes/fmnist_resnet.cnn`: the same network (three
# stages of basic blocks at widths 16-32-64, 1x1 projections, global average, dense), the same
# recipe (sgd lr 0.1, momentum 0.9, nesterov, weight decay 5e-4, cross entropy with label
# smoothing 0.1, batch 128 dropping the last partial batch, cosine schedule with one warmup epoch
# set every step by the formula of the language's train section, random_crop(2) -> random_flip,
# normalize (0.2860, 0.3530)), evaluated on the test set after every epoch.  It prints a line per
# epoch as cnnc does, and the wall time of the whole run.  Needs Debian's python3-torch:
#   /usr/bin/python3 bench/pytorch_fmnist_resnet.py [--seed S] [--epochs N] [--threads T]
#       [--data DIR] [--channels-last]
import argparse, gzip, math, os, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument('--seed', type=int, default=0)
ap.add_argument('--epochs', type=int, default=30)
ap.add_argument('--threads', type=int, default=2)
ap.add_argument('--steps', type=int, default=0, help='stop after this many steps (timing only)')
ap.add_argument('--data', default='/usr/share/datasets/fashion-mnist')
ap.add_argument('--channels-last', action='store_true')
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
rng = np.random.default_rng(a.seed)


def idx(name, offset, shape):
    with gzip.open(os.path.join(a.data, name)) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset).reshape(shape)


X = torch.tensor(idx('train-images-idx3-ubyte.gz', 16, (-1, 1, 28, 28)).astype(np.float32) / 255)
Y = torch.tensor(idx('train-labels-idx1-ubyte.gz', 8, (-1,)).astype(np.int64))
Xt = torch.tensor(idx('t10k-images-idx3-ubyte.gz', 16, (-1, 1, 28, 28)).astype(np.float32) / 255)
Yt = torch.tensor(idx('t10k-labels-idx1-ubyte.gz', 8, (-1,)).astype(np.int64))
MEAN, STD = 0.2860, 0.3530


def cbn(cin, cout, k, stride=1):
    return [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.y = nn.Sequential(*cbn(cin, cout, 3, stride), nn.ReLU(), *cbn(cout, cout, 3))
        self.s = nn.Sequential(*cbn(cin, cout, 1, stride)) if stride != 1 else nn.Identity()

    def forward(self, x):
        return F.relu(self.y(x) + self.s(x))


def stage(cin, cout, n, stride):
    return [Block(cin, cout, stride)] + [Block(cout, cout, 1) for _ in range(n - 1)]


model = nn.Sequential(*cbn(1, 16, 3), nn.ReLU(), *stage(16, 16, 3, 1), *stage(16, 32, 3, 2),
                      *stage(32, 64, 3, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
fmt = torch.channels_last if a.channels_last else torch.contiguous_format
model = model.to(memory_format=fmt)
print('parameters', sum(p.numel() for p in model.parameters()))
LR, BATCH = 0.1, 128
opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, nesterov=True, weight_decay=5e-4)
loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
steps_per_epoch = X.shape[0] // BATCH
T, W = a.epochs * steps_per_epoch, steps_per_epoch


def lr_at(t):
    if t < W:
        return LR * (t + 1) / W
    return LR * 0.5 * (1 + math.cos(math.pi * (t - W) / (T - W)))


def augment(xb):
    # random_crop(2): zero-pad 2 pixels each side, crop 28x28 back at a random offset; then a
    # horizontal flip with p=0.5; then normalisation
    n = xb.shape[0]
    padded = F.pad(xb, (2, 2, 2, 2))
    dy, dx = rng.integers(0, 5, n), rng.integers(0, 5, n)
    out = torch.empty_like(xb)
    flip = rng.random(n) < 0.5
    for i in range(n):
        c = padded[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28]
        out[i] = c.flip(-1) if flip[i] else c
    return (out - MEAN) / STD


def evaluate():
    model.eval()
    loss, right = 0.0, 0
    with torch.no_grad():
        for i in range(0, Xt.shape[0], 1000):
            out = model(((Xt[i:i + 1000] - MEAN) / STD).contiguous(memory_format=fmt))
            loss += F.cross_entropy(out, Yt[i:i + 1000], reduction='sum').item()
            right += (out.argmax(1) == Yt[i:i + 1000]).sum().item()
    model.train()
    return loss / Xt.shape[0], 100.0 * right / Xt.shape[0]


start = time.time()
t = 0
for epoch in range(a.epochs):
    e0 = time.time()
    perm = torch.randperm(X.shape[0])
    tl, tr, seen = 0.0, 0, 0
    for s in range(steps_per_epoch):
        if a.steps and t >= a.steps:
            break
        i = perm[s * BATCH:(s + 1) * BATCH]
        xb = augment(X[i]).contiguous(memory_format=fmt)
        for g in opt.param_groups:
            g['lr'] = lr_at(t)
        out = model(xb)
        loss = loss_fn(out, Y[i])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        t += 1
        tl += loss.item() * BATCH
        tr += (out.argmax(1) == Y[i]).sum().item()
        seen += BATCH
    dt = time.time() - e0
    vl, va = evaluate()
    print('epoch %d: train loss %.4f, accuracy %.2f%%, %.0f images/s, %.1f s; test loss %.4f, '
          'test accuracy %.2f%%' % (epoch + 1, tl / seen, 100.0 * tr / seen, seen / dt, dt, vl, va),
          flush=True)
    if a.steps and t >= a.steps:
        break
print('wall time %.1f s, final test accuracy %.2f%%' % (time.time() - start, va))
