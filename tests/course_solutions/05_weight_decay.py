"""Reference solution for chapter 05, written apart from the notebook's own."""
# %% solution
def decay_factor(history, weight_decay):
    factor = 1.0
    for step_lr in history.lr:
        factor *= 1 - step_lr * weight_decay
    return factor


mlp_shrink = decay_factor(mlp_runs[mlp_best], mlp_best)
cnn_shrink = decay_factor(cnn_runs[too_much], too_much)
# %% solution
signals = load_dataset("mnist1d")
loader_train = TensorLoader(signals.x_train, signals.y_train, 64, seed=0, device=s.device)
loader_val = TensorLoader(signals.x_val, signals.y_val, 1000, shuffle=False, device=s.device)
torch.manual_seed(0)
net = MLP(in_features=40)
opt = torch.optim.SGD(net.parameters(), lr=small_max_lr / 10, momentum=0.9)
tried = {}
full_best, full_runs = search(lambda wds: short_runs(net, opt, loader_train, loader_val, wds, tried,
                                                     epochs=full_epochs, max_lr=small_max_lr))
