"""End-to-end tests: whole pytest runs (pytester) on the real QNN HTP simulator and real sshd boards."""
