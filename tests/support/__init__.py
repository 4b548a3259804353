"""Helpers shared by the test suites: a real mosquitto per test session and a paho probe."""
