"""Reference solution for chapter 07, written apart from the notebook's own."""
# %% solution
rates = np.exp(np.linspace(np.log(lr_box[0]), np.log(lr_box[1]), n_trials))
line = Search(model, data, {"max_lr": [float(rate) for rate in rates]}, sampler="grid",
              steps=trial_steps, seed=0, device=str(s.device))
line.run()
