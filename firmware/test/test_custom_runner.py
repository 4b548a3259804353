"""`pio test` runner for firmware/test/check.h: one line per case, no registry downloads."""
import re

from platformio.public import TestCase, TestRunnerBase, TestStatus

CASE_RE = re.compile(r"^(ok|FAIL) (\S+)\s*$")
DETAIL_RE = re.compile(r"^FAIL-DETAIL (.*)$")


class CustomTestRunner(TestRunnerBase):
    detail = ""

    def on_testing_line_output(self, line):
        print(line, end="")
        detail = DETAIL_RE.match(line)
        if detail:
            self.detail = detail.group(1)
            return
        case = CASE_RE.match(line)
        if case:
            passed = case.group(1) == "ok"
            self.test_suite.add_case(
                TestCase(
                    name=case.group(2),
                    status=TestStatus.PASSED if passed else TestStatus.FAILED,
                    message=None if passed else self.detail,
                )
            )
            self.detail = ""
        if re.match(r"^\d+ passed, \d+ failed", line):
            self.test_suite.on_finish()
