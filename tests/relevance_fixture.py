"""Abstracts from outside the field, written for the relevance gate's tests and its calibration: bread baking,
fluid dynamics, sorting algorithms and science-fiction film reviews, in the shape the arXiv feed serves them."""

from __future__ import annotations

from tests.arxiv_fixture import AtomEntry


def _entry(arxiv_id: str, title: str, abstract: str, category: str) -> AtomEntry:
    date = f"20{arxiv_id[:2]}-{arxiv_id[2:4]}-15"
    return AtomEntry(arxiv_id, 1, title, ["A. Fixture"], date, date, abstract, [category])


OFF_TOPIC = [
    _entry(
        "2501.10001",
        "Crumb Structure of Sourdough Bread under Varying Hydration and Fermentation Time",
        "We study how dough hydration and bulk fermentation time shape the crumb of sourdough bread. Loaves were "
        "baked from a wheat flour starter at hydrations from 65 to 85 percent and proofed for four to sixteen hours "
        "at controlled temperature. X-ray tomography of the crumb shows that longer fermentation enlarges gas cells "
        "and opens the crumb, while high hydration increases oven spring only when the gluten network is strong. "
        "Lactic acid bacteria lower the pH of the dough and slow staling over three days of storage. We give "
        "practical guidance for home bakers on kneading, shaping and scoring loaves.",
        "q-bio.OT",
    ),
    _entry(
        "2502.10002",
        "Yeast Activity and Oven Temperature in Home Bread Baking",
        "Baking bread at home depends on yeast activity, proofing temperature and the oven. We measure the rise of "
        "dough made with instant yeast and with a levain, baked in a Dutch oven, on a baking stone and in a loaf "
        "tin. Steam during the first minutes of baking delays crust formation and improves volume. A cooler, "
        "longer proof gives a more sour taste and a chewier crust. Recipes and timings for a basic loaf are "
        "provided.",
        "physics.pop-ph",
    ),
    _entry(
        "2503.10003",
        "Direct Numerical Simulation of Turbulent Channel Flow at High Reynolds Number",
        "We present direct numerical simulations of incompressible turbulent channel flow at friction Reynolds "
        "numbers up to 5200, solving the Navier-Stokes equations with a spectral method. The mean velocity "
        "profile follows the logarithmic law of the wall, and near-wall streaks and hairpin vortices dominate "
        "the production of turbulent kinetic energy. We compare the energy spectra, the Reynolds stresses and "
        "the pressure fluctuations with experiments in wind tunnels and discuss the scaling of the boundary layer.",
        "physics.flu-dyn",
    ),
    _entry(
        "2504.10004",
        "Vortex Shedding behind a Cylinder in Viscous Flow",
        "Flow past a circular cylinder sheds vortices into a von Karman street once the Reynolds number exceeds a "
        "critical value. Using particle image velocimetry in a water tunnel and lattice Boltzmann simulations, we "
        "measure the Strouhal number, the drag and lift coefficients and the wake width over a range of Reynolds "
        "numbers. Viscosity and boundary-layer separation explain the onset of the instability, and a reduced "
        "model of the wake oscillator reproduces the measured frequencies.",
        "physics.flu-dyn",
    ),
    _entry(
        "2505.10005",
        "A Cache-Efficient Quicksort with Dual Pivots",
        "Quicksort remains the sorting algorithm of choice in many standard libraries. We analyse dual-pivot "
        "partitioning and show that its advantage over classic quicksort comes from fewer cache misses rather "
        "than fewer comparisons. A branch-free partition loop and insertion sort for small subarrays reduce the "
        "running time on arrays of integers and floating-point keys by 15 percent. We prove the expected number "
        "of swaps and compare against heapsort, merge sort and introsort on random, sorted and adversarial inputs.",
        "cs.DS",
    ),
    _entry(
        "2506.10006",
        "Worst-Case Inputs for Median-of-Three Quicksort",
        "Median-of-three pivot selection protects quicksort against sorted inputs but not against every "
        "adversary. We construct permutations that force quadratic running time, count the comparisons exactly, "
        "and show how introsort's switch to heapsort bounds the worst case at O(n log n). Experiments on "
        "arrays of up to a billion elements confirm the analysis of the recursion depth and of stack usage.",
        "cs.DS",
    ),
    _entry(
        "2507.10007",
        "Time Loops and Lonely Astronauts: A Review of Recent Science-Fiction Films",
        "This review essay discusses a decade of science-fiction cinema, from space operas to quiet films about "
        "time travel and first contact. We look at how directors stage the loneliness of astronauts, how "
        "soundtracks and practical effects build the atmosphere of an alien planet, and why audiences and "
        "critics disagree about endings. The plots, the performances of the lead actors and the box office of "
        "twelve films are compared, with a short rating of each movie.",
        "physics.pop-ph",
    ),
    _entry(
        "2508.10008",
        "Dystopian Cities on Screen: Set Design in Science-Fiction Movies",
        "Science-fiction movies imagine the cities of the future as towers of neon, rain and surveillance. This "
        "essay reviews the set design, cinematography and costume of classic and recent films, and how their "
        "directors borrowed from architecture and film noir. We argue that the best of these movies use the "
        "city as a character, and rank the films by the reviews of critics and of audiences.",
        "physics.soc-ph",
    ),
]
