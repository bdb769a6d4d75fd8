"""The pieces of ``python -m iwx.bench`` (the command line is :mod:`iwx.bench`).

configured : what a gin file builds (task split, env, agent, batch shape) and a record
             of the networks' widths, so every timed object is the configured one
timing     : warm-up and round-robin timing of many items
reference  : a SAC-style update, the learner rows' reference (timing only)
rows       : the rows of the table: learner, acting, physics tasks, every method
table      : the machine record and the printed table
"""
