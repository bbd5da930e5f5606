"""Reference solution for chapter 08, written apart from the notebook's own."""
# %% solution
lowest_val_loss, best_epoch = min(zip(recipe.val_loss, recipe.eval_epoch))  # (loss, epoch) pairs
# %% solution
import math

from disciplined_widgets.models import MLP

torch.manual_seed(0)
net = MLP(in_features=math.prod(s.data.input_shape))
opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
mlp_bounds = lr_range_test(net, opt, criterion, train_loader, seed=0, device=s.device).suggestions.bounds
schedule = one_cycle(opt, mlp_bounds[1], final_epochs * len(train_loader), div=mlp_bounds[1] / mlp_bounds[0])
mlp_history = fit(net, opt, criterion, train_loader, val_loader, epochs=final_epochs,
                  schedulers=[schedule], seed=0, device=s.device)
