/* Checks of a store file from outside the store's code, shared by the store's tests. */
#ifndef NOTEGW_TEST_STORE_CHECK_H
#define NOTEGW_TEST_STORE_CHECK_H
/* The meta row's counters agree with the rows (they are kept partly by triggers,
 * partly by the store's code once per transaction); fails the cmocka test if not. */
void store_check_counters(const char *path);
#endif
