"""What tests share, in one place: the sandbox's control API, CLI processes, manifest trees, waits.

Test modules import from here instead of copying helpers from each other (issue 28).
"""
