"""Batch work over many applications with the same code as serving: today what-if replay of history
on a new policy (`whatif`) and its HTML report (`report`); simulation and stress grow here."""
