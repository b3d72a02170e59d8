"""Simulated studies: many seeded patients, each attempted by virtual operators, for
comparing procedures and techniques over a population (``spinesim study``).

- :mod:`simulator.study.population`: the study's patients. Patient ``i`` of study seed ``S`` is
  drawn from the distributions of ``assets/population.toml`` (sex, age, height, BMI, anatomical
  variants) using only ``(S, i)``, so an interrupted study that is resumed, or a study split
  across workers, gets the same patients.
"""
