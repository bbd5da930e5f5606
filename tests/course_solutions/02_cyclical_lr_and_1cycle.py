"""Reference solution for chapter 02, written apart from the notebook's own."""
# %% solution
step_size = 2 * steps_per_epoch
into_cycle = (3 * steps_per_epoch) % (2 * step_size)  # steps since the cycle began
from_peak = abs(into_cycle - step_size) / step_size   # 0 at the peak, 1 at either end
clr_lr = high - (high - low) * from_peak


# %% solution
def final_accuracy(n_epochs):
    return train(n_epochs, low, lambda opt, total: one_cycle(opt, high, total)).val_accuracy[-1]


shortest = next((n for n in range(2, 21, 2) if final_accuracy(n) >= exercise_target), 20)
