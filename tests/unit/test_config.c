#include <cmocka.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
static void t_placeholder(void **s)
{
	(void)s;
}
int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(t_placeholder)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
