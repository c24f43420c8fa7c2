"""The README's results section is what the committed run says, not prose that can drift."""

from conftest import REPO
from regmix.report import README_BEGIN, README_END, committed_results, readme_with_results


def test_readme_results_match_the_committed_run():
    readme = (REPO / "README.md").read_text()
    assert README_BEGIN in readme and README_END in readme
    assert readme == readme_with_results(readme, committed_results(REPO)), \
        "README results differ from metrics/ and results/: run `make readme`"
