"""pytest item kinds of the plugin (suite items, the broken-suite item) and the checks as pytest runs them."""
