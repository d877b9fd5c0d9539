"""franz-go's own integration suite (pkg/kgo's tests of the franz-go version
tests/compat/go pins) on Runnel's broker, the yardstick issue 21 names:
every test passes, and none skips but the SASL ones and the one Apache
Kafka 4 skips as well (`franz_go_suite.ALLOWED_SKIPS`).

`franz_go_suite.py` (also scripts/franz_go_suite.sh) builds the suite's
test binary once into ~/.cache/runnel/go and starts a `runnel serve` of its
own as franz-go's CI starts Kafka (one node, share delivery count limit
10). The suite takes about two minutes.
"""

from __future__ import annotations

import pytest

import franz_go_suite
from conftest import runnel_bin

pytestmark = pytest.mark.timeout(900)


# Tests CI leaves out while a bug of Runnel's that they show is open (a
# flaky test is a bug: never retried here). Each stays runnable by hand:
# scripts/franz_go_suite.sh -- -test.run NAME. Empty: TestShareGroupETL,
# once here (it timed out in 2 of 16 runs), lost released records to a race
# in the broker's ShareFetch, fixed (group/share.rs, ShareGroups::truncated).
KNOWN_OPEN_BUGS: list[str] = []


def test_franz_go_kgo_suite_passes_on_runnel(tmp_path):
    try:
        results = franz_go_suite.run_suite(
            runnel_bin(),
            go_args=[f"-test.skip=^({'|'.join(KNOWN_OPEN_BUGS)})$"] if KNOWN_OPEN_BUGS else [],
            timeout_s=840,
            keep_dir=tmp_path / "suite",
        )
    except franz_go_suite.SuiteError as e:
        pytest.fail(str(e))
    report = f"{results.summary()}\nbroker log: {results.broker_log}"
    assert not results.failed, report
    assert not results.unexpected_skips(), report
    assert results.exit_code == 0, report
    # The suite really ran: its group, transaction and share-group
    # pipelines among the passes.
    for name in ("TestGroupETL", "TestTxnEtl", "Test848RegexBrokerResolves",
                 "TestShareGroupOffsetsAdmin", "TestShareGroupETL"):
        assert name in results.passed, report
    assert len(results.top_level(results.passed)) >= 140, report
