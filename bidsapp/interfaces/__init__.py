"""Thin nipype SimpleInterfaces that adapt files to the library functions."""
