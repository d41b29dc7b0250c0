"""pytest item kinds (suite items, the item of a suite file that does not validate; the place for more, such
as an op-matrix corpus) and the checks as pytest runs them, listed in the check table."""
