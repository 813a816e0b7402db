# store: the SQLite store-and-forward queue and the group commit over it (issue 4).
libngw_la_SOURCES += src/store.c src/store_out.c src/store_in.c src/store-private.h \
	src/batch.c src/batch.h
