"""Reference solution for chapter 07, written apart from the notebook's own."""
# %% solution
finished = rand.table().dropna(subset=["val_accuracy"])
threshold = finished["val_accuracy"].max() - 0.05
good_lrs = finished.loc[finished["val_accuracy"] >= threshold, "max_lr"].sort_values().tolist()
lrs = np.array(lr_grid)
grid_hits = int(((lrs >= min(good_lrs)) & (lrs <= max(good_lrs))).sum())
# %% solution
rates = np.exp(np.linspace(np.log(lr_box[0]), np.log(lr_box[1]), n_trials))
line = Search(model, data, {"max_lr": [float(rate) for rate in rates]}, sampler="grid",
              steps=trial_steps, seed=0, device=str(s.device))
line.run()
