# The PyTorch twin of `cnnc train lenet5.cnn` (batch 64, sgd lr 0.05 momentum 0.9, 3 epochs,
# shuffled each epoch), for comparing test accuracy per seed.  Needs Debian's python3-torch:
#   /usr/bin/python3 bench/pytorch_lenet5.py 0 1 2 3 4
import gzip, numpy as np, torch, torch.nn as nn, sys, time
torch.set_num_threads(2)
d='/usr/share/datasets/fashion-mnist/'
def imgs(f): return np.frombuffer(gzip.open(d+f).read(),np.uint8,offset=16).reshape(-1,1,28,28).astype(np.float32)/255
def labs(f): return np.frombuffer(gzip.open(d+f).read(),np.uint8,offset=8).astype(np.int64)
X=torch.tensor(imgs('train-images-idx3-ubyte.gz')); Y=torch.tensor(labs('train-labels-idx1-ubyte.gz'))
Xt=torch.tensor(imgs('t10k-images-idx3-ubyte.gz')); Yt=torch.tensor(labs('t10k-labels-idx1-ubyte.gz'))
for seed in map(int, sys.argv[1:]):
    torch.manual_seed(seed)
    m=nn.Sequential(nn.Conv2d(1,6,5,padding=2),nn.ReLU(),nn.MaxPool2d(2),nn.Conv2d(6,16,5),nn.ReLU(),nn.MaxPool2d(2),nn.Flatten(),nn.Linear(400,120),nn.ReLU(),nn.Linear(120,84),nn.ReLU(),nn.Linear(84,10))
    opt=torch.optim.SGD(m.parameters(),lr=0.05,momentum=0.9); lf=nn.CrossEntropyLoss()
    accs=[]
    for ep in range(3):
        perm=torch.randperm(60000)
        for i in range(0,60000,64):
            idx=perm[i:i+64]; opt.zero_grad(); l=lf(m(X[idx]),Y[idx]); l.backward(); opt.step()
        with torch.no_grad(): accs.append((m(Xt).argmax(1)==Yt).float().mean().item()*100)
    print('seed',seed,['%.2f'%a for a in accs], flush=True)
