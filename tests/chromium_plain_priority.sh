#!/bin/sh
# Starts the tests' Chromium ($OPSCRAFT_TEST_CHROMIUM) without CAP_SYS_NICE (tests/conftest.py,
# `chromium_launch`): run as root, Chromium raises its renderers' main, compositor and IO threads
# to nice -8, and on a busy 2-core machine they starve the servers under test.
exec setpriv --bounding-set=-sys_nice --inh-caps=-sys_nice "$OPSCRAFT_TEST_CHROMIUM" "$@"
