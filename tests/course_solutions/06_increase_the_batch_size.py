"""Reference solution for chapter 06, written apart from the notebook's own."""
# %% solution
seconds_per_update = {}
for key, hist in zip(schedules, comparison.histories):
    seconds_per_update[key] = hist.time[-1] / len(hist.step)  # wall time over updates
# %% solution
N, k = len(s.data.x_train), len(milestones)
g_decay = lr * factor ** -k * N / (batch * 0.1)       # the LR divided k times
g_growth = lr * N / (batch * factor ** k * 0.1)       # the batch multiplied k times
