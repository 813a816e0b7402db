/* config.c: being written (foundation, issue 2). */
