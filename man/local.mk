# man: the operator's documentation: one page per program and one for the
# configuration, and bash completion for notegw (the same words the pages list).
dist_man_MANS = man/notegwd.8 man/notegw.1 man/notegw.conf.5 man/notecard-sim.1

bashcompletiondir = $(datadir)/bash-completion/completions
dist_bashcompletion_DATA = tools/completion/notegw
