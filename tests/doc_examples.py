#!/usr/bin/env python3
"""Extracts the C examples of docs/api/c.md ("## Examples") into a source
file the build compiles, so that the examples a reader copies are the ones
tests/doc_examples_test.cc runs.

  doc_examples.py DOC OUT.c

The example under "A deploy step" is a complete translation unit (it
defines `expand`) and is copied as it is; the one under "The application
startup check" is a function body using `dsn`, wrapped in
`int startup_check(const char* dsn)`. A missing example is an error.
"""
import re
import sys


def c_block_after(text, lead):
    """The first ```c block after the paragraph starting with `lead`."""
    at = text.find("\n" + lead)
    if at < 0:
        sys.exit(f"doc_examples.py: no paragraph starting with {lead!r}")
    m = re.compile(r"```c\n(.*?)```", re.S).search(text, at)
    if m is None:
        sys.exit(f"doc_examples.py: no ```c block after {lead!r}")
    return m.group(1)


def main():
    doc, out = sys.argv[1], sys.argv[2]
    text = open(doc, encoding="utf-8").read()
    examples = text[text.index("\n## Examples"):]
    deploy = c_block_after(examples, "A deploy step")
    startup = c_block_after(examples, "The application startup check")
    body = "\n".join("  " + line if line else "" for line in startup.splitlines())
    with open(out, "w", encoding="utf-8") as f:
        f.write(f"/* Generated from {doc} by tests/doc_examples.py; do not edit. */\n")
        f.write("#include <stdlib.h>\n")
        f.write(deploy)
        f.write("\nint startup_check(const char* dsn) {\n" + body + "\n  return 0;\n}\n")


if __name__ == "__main__":
    main()
