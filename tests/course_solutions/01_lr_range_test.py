"""Reference solution for chapter 01, written apart from the notebook's own."""
# %% solution
step_factor = math.exp(math.log(result.end_lr / result.start_lr) / (result.num_iter - 1))
sweep_lrs = [result.start_lr]
while len(sweep_lrs) < result.num_iter:
    sweep_lrs.append(sweep_lrs[-1] * step_factor)


# %% solution
rules = ("steepest", "minimum", "valley")
accuracy_by_rule = {rule: one_cycle_run(result.bounds(max_at=rule)[1]).val_accuracy[-1] for rule in rules}
best_rule = sorted(rules, key=lambda rule: -accuracy_by_rule[rule])[0]
