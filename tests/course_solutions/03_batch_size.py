"""Reference solution for chapter 03, written apart from the notebook's own."""
# %% solution
samples = s.data.x_train.shape[0]


def noise_scale(lr, batch, momentum=0.9):
    """g = eps * N / (B * (1 - m)), S. L. Smith et al. 1711.00489, section 2."""
    return lr * samples / (batch * (1 - momentum))


noise_scales = {b: noise_scale(base_lr * b / base_batch, b) for b in batch_sizes}
unscaled_noise_scale = noise_scale(base_lr, max(batch_sizes))


# %% solution
def final_accuracy(max_lr, batch=256):
    train_256, val_256 = s.loaders(batch)
    torch.manual_seed(0)
    mlp = s.make_model()
    opt = torch.optim.SGD(mlp.parameters(), lr=max_lr / 10, momentum=0.9, weight_decay=1e-4)
    schedule = one_cycle(opt, max_lr, epochs * len(train_256))
    run = fit(mlp, opt, criterion, train_256, val_256, epochs=epochs, schedulers=[schedule],
              seed=0, device=s.device)
    return run.val_accuracy[-1]


acc_unscaled = final_accuracy(base_lr)
acc_scaled = final_accuracy(base_lr * 256 / base_batch)  # linear scaling: LR in proportion to B
