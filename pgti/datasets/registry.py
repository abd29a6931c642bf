"""The nine datasets: names, file layouts, window lengths, real sizes and public sources.

Sizes are facts about the real data, used as the default size of synthetic data:
- chickenpox: 20 counties x 521 weeks (Rozemberczki et al. 2021, shipped in data/).
- montevideo-bus: 675 bus stops x 744 hours, October 2020; pedalme: 15 London areas x 35 weeks;
  england-covid: 129 NUTS3 regions x 61 days from 2020-03-03 (PyTorch Geometric Temporal's
  dataset/ folder, shipped in data/; see pgti/datasets/formats/).
- windmill-large: 319 windmills x 17,472 hours (PyTorch Geometric Temporal's WindmillOutputLarge).
- metr-la: 207 sensors x 34,272 five-minute steps, Mar-Jun 2012 (Li et al., DCRNN, ICLR 2018).
- pems-bay: 325 sensors x 52,116 steps, Jan-Jun 2017 (DCRNN).
- pems-all-la: 2,716 sensors; pems: 11,160 sensors (PGT-I, SC'25). Their length here,
  one year at 5 minutes (105,120 steps), is an ASSUMPTION (``size_is_assumed``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pgti.errors import InputError

BOX = "https://anl.app.box.com/shared/static/"
PGT_DATASET = "https://raw.githubusercontent.com/benedekrozemberczki/pytorch_geometric_temporal/master/dataset/"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    # The name of a file format: the ``FORMAT.name`` of a module of pgti/datasets/formats/
    # ("dcrnn-h5", "chickenpox-json", "windmill-json", "montevideo-bus-json", "pedalme-json",
    # "england-covid-json"). It picks the reader, the feature channels and the synthetic data.
    format: str
    lags: int  # L: input window length = target window length
    num_nodes: int
    num_timesteps: int
    step_seconds: int
    # Accepted file names, in order of preference. JSON sets have one file per entry;
    # DCRNN sets have (series.h5, adjacency.pkl) pairs.
    layouts: tuple[tuple[str, ...], ...]
    normalisation: str  # "none" (already standardised) | "global" | "per-node"
    missing_value: float | None  # raw value meaning "no reading" (masked in the loss)
    default_epochs: int = 100
    default_batch_size: int = 64
    # The driver's --model default where the harness-wide default cannot train on the data
    # (PGT's BatchedDCRNN divides by each node's in-degree: NaN where a node has none).
    default_model: str | None = None
    size_is_assumed: bool = False
    # First timestamp of synthetic data; for montevideo-bus also of the real file, which has none.
    start: str = "2012-03-01"
    # file name (as in the first layout) -> (url, sha256 or None)
    sources: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    @property
    def is_traffic(self) -> bool:
        return self.format == "dcrnn-h5"

    def default_paths(self, data_dir: str | Path) -> tuple[Path, ...]:
        return tuple(Path(data_dir) / f for f in self.layouts[0])


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec(
            name="chickenpox",
            format="chickenpox-json",
            lags=4,
            num_nodes=20,
            num_timesteps=521,
            step_seconds=7 * 86400,
            layouts=(("chickenpox.json",),),
            normalisation="none",
            missing_value=None,
            default_batch_size=4,
            start="2005-01-03",
            sources={
                "chickenpox.json": (
                    "https://raw.githubusercontent.com/benedekrozemberczki/"
                    "pytorch_geometric_temporal/master/dataset/chickenpox.json",
                    "724b48cfb274b2ecbb855bdb99b970b5ef9dd3671694fa477435dc1e08293735",
                )
            },
        ),
        # L = 12 hours: every reported horizon (3, 6, 12) exists; 721 windows, 505/72/144.
        # Inflow scales differ by stop (mean 0.001 to 28 an hour): normalised per stop.
        DatasetSpec(
            name="montevideo-bus",
            format="montevideo-bus-json",
            lags=12,
            num_nodes=675,
            num_timesteps=744,
            step_seconds=3600,
            layouts=(("montevideo_bus.json",),),
            normalisation="per-node",
            missing_value=None,  # a count of 0 is a real count
            default_batch_size=32,
            default_model="dcrnn-cell",  # 9 stops have no incoming link: pgt-dcrnn yields NaN
            start="2020-10-01",
            sources={
                "montevideo_bus.json": (
                    PGT_DATASET + "montevideo_bus.json",
                    "37d9c6286d474077b5c05173c1570c4da42c387013116daa8862c7a6cab86a75",
                )
            },
        ),
        # L = 3 weeks: the shortest window with a reported horizon (3); 30 windows, 21/3/6.
        # The values are already transformed to a standardised scale: used as they are.
        DatasetSpec(
            name="pedalme",
            format="pedalme-json",
            lags=3,
            num_nodes=15,
            num_timesteps=35,
            step_seconds=7 * 86400,
            layouts=(("pedalme_london.json",),),
            normalisation="none",
            missing_value=None,
            default_batch_size=3,  # the validation split holds 3 windows
            start="2020-01-06",  # synthetic data only (the real file carries no dates)
            sources={
                "pedalme_london.json": (
                    PGT_DATASET + "pedalme_london.json",
                    "8c42b893441901fb805c4f0f937543d5bb9297884ac3dec7622a3e9f7c35a79b",
                )
            },
        ),
        # L = 7 days: one week in, one out (daily reports have a weekly cycle); horizons 3 and
        # 6; 48 windows, 34/4/10. Case scales differ by region: normalised per region.
        DatasetSpec(
            name="england-covid",
            format="england-covid-json",
            lags=7,
            num_nodes=129,
            num_timesteps=61,
            step_seconds=86400,
            layouts=(("england_covid.json",),),
            normalisation="per-node",
            missing_value=None,
            default_batch_size=4,  # the validation split holds 4 windows
            start="2020-03-03",
            sources={
                "england_covid.json": (
                    PGT_DATASET + "england_covid.json",
                    "497056cc4585b58951fd5cd17554fe0c535f68ea0c907a5b5727ae30e3913450",
                )
            },
        ),
        DatasetSpec(
            name="windmill-large",
            format="windmill-json",
            lags=8,
            num_nodes=319,
            num_timesteps=17472,
            step_seconds=3600,
            layouts=(("windmill_output.json",),),
            normalisation="per-node",
            missing_value=None,
            start="2020-01-01",
            sources={"windmill_output.json": (BOX + "wgwb75lt3ty3pv5a15y9bilx1mjhcq59", None)},
        ),
        DatasetSpec(
            name="metr-la",
            format="dcrnn-h5",
            lags=12,
            num_nodes=207,
            num_timesteps=34272,
            step_seconds=300,
            layouts=(("metr-la.h5", "adj_mx_metr-la.pkl"), ("metr-la.h5", "adj_mx.pkl")),
            normalisation="global",
            missing_value=0.0,
            start="2012-03-01",
            sources={
                # DCRNN's sensor graph; the series is on DCRNN's Google Drive (see README).
                "adj_mx_metr-la.pkl": (
                    "https://raw.githubusercontent.com/liyaguang/DCRNN/master/data/sensor_graph/adj_mx.pkl",
                    None,
                ),
            },
        ),
        DatasetSpec(
            name="pems-bay",
            format="dcrnn-h5",
            lags=12,
            num_nodes=325,
            num_timesteps=52116,
            step_seconds=300,
            layouts=(("pems-bay.h5", "adj_mx_pems-bay.pkl"), ("pems-bay.h5", "adj_mx_bay.pkl")),
            normalisation="global",
            missing_value=0.0,
            start="2017-01-01",
            sources={
                "adj_mx_pems-bay.pkl": (
                    "https://raw.githubusercontent.com/liyaguang/DCRNN/master/data/sensor_graph/adj_mx_bay.pkl",
                    None,
                ),
            },
        ),
        DatasetSpec(
            name="pems-all-la",
            format="dcrnn-h5",
            lags=12,
            num_nodes=2716,
            num_timesteps=105120,
            step_seconds=300,
            layouts=(
                ("pems-all-la.h5", "adj_mx_pems-all-la.pkl"),
                ("pems_AllLA_speed.h5", "pems_AllLA_adj_mat.pkl"),
            ),
            normalisation="global",
            missing_value=0.0,
            default_epochs=30,
            size_is_assumed=True,
            start="2018-01-01",
            sources={
                "pems-all-la.h5": (BOX + "crzf75ein8s839de8fklpubauddv1p6w", None),
                "adj_mx_pems-all-la.pkl": (BOX + "9qc2lc1147xzh8kmq3j4fuo4buiksxua", None),
            },
        ),
        DatasetSpec(
            name="pems",
            format="dcrnn-h5",
            lags=12,
            num_nodes=11160,
            num_timesteps=105120,
            step_seconds=300,
            layouts=(("pems.h5", "adj_mx_pems.pkl"), ("pems_cali_speed.h5", "pems_cali_adj_mat.pkl")),
            normalisation="global",
            missing_value=0.0,
            default_epochs=30,
            size_is_assumed=True,
            start="2018-01-01",
            sources={
                "pems.h5": (BOX + "7hfhtie02iufy75ac1d8g8530majwci0", None),
                "adj_mx_pems.pkl": (BOX + "4143x1repqa1u26aiz7o2rvw3vpcu0wp", None),
            },
        ),
    ]
}


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise InputError(
            f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}"
        ) from None


def resolve_files(spec: DatasetSpec, data_dir: str | Path) -> tuple[Path, ...]:
    """Return the dataset's files in ``data_dir``, trying each accepted layout in turn.

    Raises InputError naming the expected files and how to get them when none is complete.
    """
    data_dir = Path(data_dir)
    for layout in spec.layouts:
        paths = tuple(data_dir / f for f in layout)
        if all(p.is_file() for p in paths):
            return paths
    expected = spec.default_paths(data_dir)
    missing = [str(p) for p in expected if not p.is_file()]
    raise InputError(
        f"missing dataset file {', '.join(missing)}: download it with "
        f"`python scripts/download_data.py {spec.name} --data-dir {data_dir}` or generate "
        f"synthetic data with `python scripts/make_synthetic.py --dataset {spec.name} "
        f"--data-dir {data_dir}`"
    )
