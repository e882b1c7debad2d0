#!/usr/bin/env python3
"""Every `Example` block in a public header (include/pgshift/*.h) compiles.

A block is the indented code (comment lines starting with three spaces)
that follows a comment line saying "Example" in the same comment. C++ headers' blocks are
compiled as bodies of functions that may use `driver` (a pgshift::Driver*),
`dsn` (a std::string) and `current` (a pgshift::Phase) and return an int;
c.h's blocks as C function bodies returning an int.

  header_examples_test.py SOURCE_DIR CXX C_COMPILER INCLUDE_DIR...
"""
import os
import re
import subprocess
import sys
import tempfile


def blocks(path, prefix):
    """Code blocks after "Example" lines; `prefix` is the comment leader."""
    lines = open(path, encoding="utf-8").read().splitlines()
    out, current, armed = [], None, False
    for line in lines + [""]:
        body = line[len(prefix):] if line.startswith(prefix) else None
        if body is not None and body.startswith("   ") and (armed or current is not None):
            current = (current or []) + [body[3:]]
            armed = False
            continue
        if body is not None and body.strip() == "":
            if current is not None:
                current.append("")
            continue  # a blank comment line keeps an "Example" line armed
        if current is not None:
            out.append("\n".join(current).rstrip())
            current = None
        # Prose after an "Example" line keeps it armed until the code starts;
        # the end of the comment disarms it.
        armed = body is not None and (armed or "Example" in body)
    return out


def main():
    src, cxx, cc = sys.argv[1], sys.argv[2], sys.argv[3]
    includes = [f"-I{d}" for d in sys.argv[4:]]
    include_dir = os.path.join(src, "include", "pgshift")
    failures, count = 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(os.listdir(include_dir)):
            if not name.endswith(".h"):
                continue
            path = os.path.join(include_dir, name)
            is_c = name == "c.h"
            found = blocks(path, " *" if is_c else "//")
            if not found:
                continue
            stem = re.sub(r"\W", "_", name)
            if is_c:
                code = ['#include <stdio.h>', '#include <stdlib.h>', '#include "pgshift/c.h"']
                for i, b in enumerate(found):
                    code += [f"int example_{stem}_{i}(void) {{", b, "  return 0;", "}"]
                file, compiler, std = os.path.join(tmp, f"{stem}.c"), cc, "-std=c99"
            else:
                code = ["#include <cstdlib>", "#include <iostream>", "#include <string>",
                        f'#include "pgshift/{name}"', '#include "pgshift/pgshift.h"']
                for i, b in enumerate(found):
                    code += [f"int Example_{stem}_{i}(pgshift::Driver* driver, const std::string& dsn, "
                             "pgshift::Phase current) {",
                             "  (void)driver; (void)dsn; (void)current;", "  {", b, "  }",
                             "  return 0;", "}"]
                file, compiler, std = os.path.join(tmp, f"{stem}.cc"), cxx, "-std=c++17"
            with open(file, "w", encoding="utf-8") as f:
                f.write("\n".join(code) + "\n")
            count += len(found)
            r = subprocess.run([compiler, std, "-fsyntax-only", *includes, file],
                               capture_output=True, text=True)
            if r.returncode != 0:
                failures += 1
                print(f"header_examples_test: the example of include/pgshift/{name} does not "
                      f"compile:\n{open(file).read()}\n{r.stderr}", file=sys.stderr)
    if count == 0:
        print("header_examples_test: no example found; the extractor is broken", file=sys.stderr)
        return 1
    print(f"header_examples_test: {count} example block(s), {failures} failing")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
