"""Reference solution for chapter 01, written apart from the notebook's own."""
# %% solution
rules = ("steepest", "minimum", "valley")
accuracy_by_rule = {rule: one_cycle_run(result.bounds(max_at=rule)[1]).val_accuracy[-1] for rule in rules}
best_rule = sorted(rules, key=lambda rule: -accuracy_by_rule[rule])[0]
