"""Reference solution for chapter 04, written apart from the notebook's own."""
# %% solution
best_momentum, peak_step = {}, {}
for top_lr, row in mean.items():
    constant = {m: row[str(m)] for m in momenta}
    best_momentum[top_lr] = max(constant, key=constant.get)
    peak_step[top_lr] = top_lr * 1 / (1 - best_momentum[top_lr])
# %% solution
loader_train, loader_val = s.loaders(batch)
torch.manual_seed(0)
mlp = s.make_model()
opt = torch.optim.SGD(mlp.parameters(), lr=max_lrs[0] / 10, momentum=0.9, weight_decay=1e-4)
schedule = one_cycle(opt, max_lrs[0], epochs * len(loader_train), momentum=(0.95, 0.85))
history = fit(mlp, opt, criterion, loader_train, loader_val, epochs=epochs, schedulers=[schedule],
              seed=0, device=s.device)
