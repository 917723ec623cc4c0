"""A small scripted run with real lineage, for the inspect and report tests.

The scripted engine hands out the mutations below in order, cycling: each is a distinct
problem whose answer is 7, so it parses, is new the first time (a duplicate when the
cycle comes round again) and gets archived; archived problems become parents, so lineages
grow past depth 1. The solver cycles through five answers, two of them 7, so with k = 4
solve rates are 0.25, 0.5 or 0.75: all in the band, with different qualities. One output
has no solution (unparseable) and one problem is full of HTML, to test escaping.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config import load_config
from pipeline.loop.generate import run_generation
from tests.conftest import write_config, write_script

HTML_PROBLEM = "Is 3 < 5 & 9 > 2? <script>document.title='pwned'</script><b>Add</b> 3 and 4."

STORIES = [
    HTML_PROBLEM,
    "Ann has 10 marbles and gives away 3. How many marbles does she have left?",
    "A train travels 14 km in 2 hours at a constant speed. What is its speed in km per hour?",
    "What is the remainder when 23 is divided by 8?",
    "A square garden has a perimeter of 28 metres. How long is one side in metres?",
    "How many days are there in one week?",
    "Solve for x: 3x - 5 = 16.",
    "A baker makes 42 rolls and packs them in bags of 6. How many bags does she fill?",
    "What is the smallest prime number greater than 5?",
    "The mean of 4, 7 and 10 is what number?",
    "How many sides does a heptagon have?",
    "What is 56 divided by 8?",
    "Tickets cost 5 dollars each. Sam pays 35 dollars. How many tickets does he buy?",
    "A rope 63 cm long is cut into 9 equal pieces. How long is each piece in cm?",
    "What is the square root of 49?",
    "A week has how many days more than zero days?",
    "Lena reads 21 pages in 3 days, the same number each day. How many pages does she read per day?",
    "What is 100 minus 93?",
    "A hexagon has 6 sides. How many sides does a shape with one more side have?",
    "The product of a number and 9 is 63. What is the number?",
    "Tom is 4 years older than Kim, who is 3. How old is Tom?",
    "How many whole numbers lie strictly between 0 and 8?",
    "A recipe needs 7 eggs per cake. How many eggs does one cake need?",
    "Water fills a tank at 2 litres per minute; after how many minutes does a 14 litre tank fill?",
]
MUTATIONS = [f" {p}\nNew solution: Working it out gives 7. The answer is 7." for p in STORIES]
MUTATIONS.insert(5, " this output has no solution section at all")
SOLVES = [" The answer is 7.", " The answer is 3.", " The answer is 7.", " The answer is 2.", " The answer is 5."]


def run_config(base: Path, *, steps: int = 5, batch: int = 6, seeds: int = 10) -> Path:
    """The scripted config (and its script file) under `base`; returns the config's path."""
    script = write_script(base / "script.json", mutate=MUTATIONS, solve=SOLVES)
    return write_config(base / "config.toml", f"""
[run]
steps = {steps}
batch_size = {batch}
[seeds]
limit = {seeds}
[engine]
kind = "scripted"
[engine.scripted]
script = "{script}"
[solver]
k = 4
[archive]
cells = 32
""")


def make_run(base: Path, *, steps: int = 5, batch: int = 6, seeds: int = 10) -> Path:
    """A committed scripted run under `base`; returns its run directory."""
    cfg = run_config(base, steps=steps, batch=batch, seeds=seeds)
    run_dir = base / "run"
    run_generation(load_config(cfg), run_dir, show_bar=False, progress=lambda m: None)
    return run_dir
