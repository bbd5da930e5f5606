"""Reference solution for chapter 06, written apart from the notebook's own."""
# %% solution
N, k = len(s.data.x_train), len(milestones)
g_decay = lr * factor ** -k * N / (batch * 0.1)       # the LR divided k times
g_growth = lr * N / (batch * factor ** k * 0.1)       # the batch multiplied k times
