/* notegwd: being written (foundation, issue 2). */
#include <stdio.h>
int main(void)
{
	printf("notegwd " PACKAGE_VERSION "\n");
	return 0;
}
