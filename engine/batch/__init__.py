"""The one batch engine: many applications decided with the same stages as serving, in chunks, on
this process, local processes or a Dask cluster (`pool`, `decider`). What-if replay of history on a
new policy (`whatif`), simulation, stress scenarios and pre-approval over a data file (`simulate`,
`scenario`, `portfolio`) and their reports (`report`, `sim_report`) are built on it."""
