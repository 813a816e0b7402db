/* core.c: being written (foundation, issue 2). */
