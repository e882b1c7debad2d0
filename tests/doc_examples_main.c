/* Runs the C examples of docs/api/c.md (extracted by tests/doc_examples.py):
 *   doc_examples_c deploy DSN FILE NAME   -> expand(DSN, FILE, NAME)
 *   doc_examples_c startup DSN            -> startup_check(DSN)
 * driven by tests/doc_examples_test.cc. */
#include <stdio.h>
#include <string.h>

int expand(const char* dsn, const char* file, const char* name);
int startup_check(const char* dsn);

int main(int argc, char** argv) {
  if (argc == 5 && strcmp(argv[1], "deploy") == 0) return expand(argv[2], argv[3], argv[4]);
  if (argc == 3 && strcmp(argv[1], "startup") == 0) return startup_check(argv[2]);
  fprintf(stderr, "usage: doc_examples_c deploy DSN FILE NAME | startup DSN\n");
  return 2;
}
