"""Test support shared by the tests and the benchmarks: model builders, sshd boards, pytester runs."""
