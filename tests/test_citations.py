"""Every paper the code cites carries its link in the citing module; every method's section in docs/methods.md links
its paper."""

import pathlib
import re

import pytest

from tfcvr import models

ROOT = pathlib.Path(__file__).resolve().parent.parent
# "VENUE YEAR" as the code cites it -> the paper's DOI or arXiv address (each checked against the publisher's page).
REFERENCES = {
    "SIGIR 2018": "https://arxiv.org/abs/1804.07931",  # Ma et al., ESMM
    "KDD 2018": "https://doi.org/10.1145/3219819.3220007",  # Ma et al., MMoE
    "RecSys 2020": "https://doi.org/10.1145/3383313.3412236",  # Tang et al., PLE
    "WWW 2021": "https://arxiv.org/abs/2008.13535",  # Wang et al., DCN-V2
    "ICML 2019": "https://proceedings.mlr.press/v97/wang19n.html",  # Wang et al., DR-JL
    "CVPR 2019": "https://arxiv.org/abs/1904.05835",  # Ahn et al., variational information distillation
    "WWW 2020": "https://doi.org/10.1145/3366423.3380037",  # Zhang et al., Multi-IPW/Multi-DR
    "WWW 2022": "https://doi.org/10.1145/3485447.3512081",  # Xu et al., UKD
    "SIGIR 2022": "https://doi.org/10.1145/3477495.3531972",  # Wang et al., ESCM²
    "ICDE 2023": "https://arxiv.org/abs/2302.06141",  # Zhu et al., DCMT
    "SIGIR 2024": "https://doi.org/10.1145/3626772.3657817",  # Su et al., DDPO
    "RecSys 2024": "https://doi.org/10.1145/3640457.3688151",  # Huang et al., NISE
    "AAAI 2025": "https://arxiv.org/abs/2502.15687",  # Fei et al., EVI
    "WSDM 2026": "https://arxiv.org/abs/2502.08277",  # Cheng et al., ChorusCVR
    "ICML 2015": "https://arxiv.org/abs/1409.7495",  # Ganin and Lempitsky, gradient reversal
    "ICLR 2015": "https://arxiv.org/abs/1412.6980",  # Kingma and Ba, Adam
    "ICLR 2017": "https://arxiv.org/abs/1608.03983",  # Loshchilov and Hutter, SGDR
    "Political Analysis 2001": "https://doi.org/10.1093/oxfordjournals.pan.a004868",  # King and Zeng
}
VENUES = r"WWW|SIGIR|ICML|ICDE|RecSys|KDD|WSDM|CIKM|AAAI|CVPR|ICCV|NeurIPS|ICLR|JMLR|Political Analysis"
CITATION = re.compile(rf"\b(?:{VENUES}) (?:19|20)\d\d\b")
SOURCES = sorted(p for folder in ("tfcvr", "trainer", "serving", "benchmarks") for p in (ROOT / folder).rglob("*.py"))


def test_sources_are_found():
    assert len(SOURCES) > 50


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_cited_paper_is_linked_in_the_citing_module(path):
    text = path.read_text()
    cited = set(CITATION.findall(text))
    unknown = sorted(cited - set(REFERENCES))
    assert not unknown, (
        f"{path.name} cites {unknown}: add the paper's DOI or arXiv link to REFERENCES and to the module"
    )
    unlinked = sorted(c for c in cited if REFERENCES[c] not in text)
    assert not unlinked, f"{path.name} cites {unlinked} without the link ({[REFERENCES[c] for c in unlinked]})"


def _method_section(name: str) -> str | None:
    """docs/methods.md's "## name" block, or the block holding "### name" (a preset under its parent method)."""
    for block in (ROOT / "docs" / "methods.md").read_text().split("\n## ")[1:]:
        title, _, body = block.partition("\n")
        if title.strip() == name or re.search(rf"^### {re.escape(name)}$", body, re.MULTILINE):
            return body
    return None


@pytest.mark.parametrize("name", [n for n in models.names() if models.get(n).registered_name == n])
def test_every_method_section_links_its_paper(name):
    section = _method_section(name)
    assert section is not None, f"docs/methods.md has no section for {name}"
    links = re.findall(r"https://(?:doi\.org|arxiv\.org|proceedings\.mlr\.press)/\S+", section)
    assert links, f"docs/methods.md's section for {name} links no paper (DOI or arXiv)"
