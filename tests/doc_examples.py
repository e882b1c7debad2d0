#!/usr/bin/env python3
"""Extracts the deploy-step and startup-check examples of docs/api/c.md
or docs/api/cpp.md into a source file the build compiles, so that the
examples a reader copies are the ones tests/doc_examples_test.cc runs.

  doc_examples.py c   docs/api/c.md   OUT.c
  doc_examples.py cpp docs/api/cpp.md OUT.cc

The deploy step is a complete translation unit and is copied as it is (C:
`int expand(dsn, file, name)`; C++: `absl::Status Expand(dsn, file)`). The
startup check is a function body using `dsn`, wrapped in
`int startup_check(const char* dsn)` (C) or
`int StartupCheck(const std::string& dsn)` (C++). A missing example is an
error, so a doc edit cannot drop one silently.
"""
import re
import sys

# Per language: the fence, the paragraph leading each example, and the
# wrapper of the startup check.
LANGS = {
    "c": ("```c\n", "A deploy step", "The application startup check",
          "#include <stdlib.h>\n", "int startup_check(const char* dsn) {\n"),
    "cpp": ("```cpp\n", "### Example: a deploy step", "One connection and one round trip each",
            "#include <iostream>\n", "int StartupCheck(const std::string& dsn) {\n"),
}


def block_after(text, fence, lead):
    """The first fenced block after the paragraph starting with `lead`."""
    at = text.find("\n" + lead)
    if at < 0:
        sys.exit(f"doc_examples.py: no paragraph starting with {lead!r}")
    m = re.compile(re.escape(fence) + r"(.*?)```", re.S).search(text, at)
    if m is None:
        sys.exit(f"doc_examples.py: no {fence.strip()} block after {lead!r}")
    return m.group(1)


def main():
    lang, doc, out = sys.argv[1], sys.argv[2], sys.argv[3]
    fence, deploy_lead, startup_lead, includes, wrapper = LANGS[lang]
    text = open(doc, encoding="utf-8").read()
    deploy = block_after(text, fence, deploy_lead)
    startup = block_after(text, fence, startup_lead)
    body = "\n".join("  " + line if line else "" for line in startup.splitlines())
    with open(out, "w", encoding="utf-8") as f:
        f.write(f"/* Generated from {doc} by tests/doc_examples.py; do not edit. */\n")
        f.write(includes)
        f.write(deploy)
        f.write("\n" + wrapper + body + "\n  return 0;\n}\n")


if __name__ == "__main__":
    main()
