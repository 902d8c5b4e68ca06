"""Honours (BRIEF R6.4, R2.3): badges and levels as data, awarded by an rq job after crediting;
the yearly report and certificate; opt-in district leaderboards."""
