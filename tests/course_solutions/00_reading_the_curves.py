"""Reference solution for chapter 00, written apart from the notebook's own."""
# %% solution
overfitting = results["LR 0.1, no WD"][0]
lowest_loss_seen, best_epoch = sorted(zip(overfitting.val_loss, overfitting.eval_epoch))[0]
rise_from_best = overfitting.val_loss[-1] / lowest_loss_seen - 1


# %% solution
n_short = round(0.4 * epochs)
scores = []
for weight_decay in exercise_wds:
    short_run, _ = train(0.1, weight_decay, epochs=n_short)
    # runs that read "good" sort first, then by the final validation loss
    scores.append((diagnose(short_run).verdict != "good", short_run.val_loss[-1], weight_decay))
best_wd = sorted(scores)[0][2]
