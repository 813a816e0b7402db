/* The serial transport over a real pseudo-terminal: raw termios, segmented
 * writes, line reads reassembled from pieces, the newline-drain resync, timeouts,
 * and a tty that goes away. The test plays the card on the pty's master side. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cmocka.h>

#include "notecard/transport.h"

static int master = -1;
static char slave_path[256];
static struct card_timing tm;
static struct card_transport *t;

static int setup(void **state)
{
	int slave;
	assert_int_equal(openpty(&master, &slave, slave_path, NULL, NULL), 0);
	/* the card side raw too, so nothing is echoed or translated */
	struct termios tio;
	tcgetattr(master, &tio);
	cfmakeraw(&tio);
	tcsetattr(master, TCSANOW, &tio);
	close(slave);
	card_timing_scaled(&tm, 4);
	assert_int_equal(card_transport_serial_new(slave_path, 9600, &tm, &card_clock_real, &t), 0);
	assert_int_equal(t->ops->open(t), 0);
	return 0;
}

static int teardown(void **state)
{
	card_transport_free(t);
	if (master >= 0)
		close(master);
	master = -1;
	return 0;
}

/* Read what the host wrote, up to want bytes or ms of silence. */
static size_t card_read(char *buf, size_t want, int ms)
{
	size_t n = 0;
	while (n < want) {
		struct pollfd p = {.fd = master, .events = POLLIN};
		if (poll(&p, 1, ms) <= 0)
			break;
		ssize_t k = read(master, buf + n, want - n);
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	return n;
}

static void card_write(const char *s)
{
	assert_int_equal(write(master, s, strlen(s)), (ssize_t)strlen(s));
}

static void test_line_roundtrip(void **state)
{
	const char *req = "{\"req\":\"card.version\"}\n";
	assert_int_equal(t->ops->send(t, req, strlen(req)), 0);
	char got[4096];
	size_t n = card_read(got, strlen(req), 1000);
	assert_int_equal(n, strlen(req));
	assert_memory_equal(got, req, n);
	card_write("{\"version\":\"x\"}\r\n");
	size_t len;
	assert_int_equal(t->ops->recv_line(t, got, sizeof(got), &len, 2000), 0);
	assert_string_equal(got, "{\"version\":\"x\"}");
	assert_int_equal(len, 15);
}

static void test_long_request_segmented(void **state)
{
	/* 600 bytes: three segments, all of it arrives in order, 8-bit clean */
	char req[601];
	for (int i = 0; i < 599; i++)
		req[i] = (char)('0' + i % 64);
	req[599] = '\n';
	assert_int_equal(t->ops->send(t, req, 600), 0);
	char got[700];
	size_t n = card_read(got, 600, 1000);
	assert_int_equal(n, 600);
	assert_memory_equal(got, req, 600);
}

static void test_response_in_pieces(void **state)
{
	/* the card dribbles the answer: the line comes up whole, then the next one */
	card_write("{\"a\":");
	usleep(50000);
	card_write("1}\r");
	usleep(20000);
	card_write("\n{\"b\":2}\r\n");
	char got[64];
	size_t len;
	assert_int_equal(t->ops->recv_line(t, got, sizeof(got), &len, 2000), 0);
	assert_string_equal(got, "{\"a\":1}");
	assert_int_equal(t->ops->recv_line(t, got, sizeof(got), &len, 2000), 0);
	assert_string_equal(got, "{\"b\":2}");
}

static void test_timeouts_and_cap(void **state)
{
	char got[32];
	size_t len;
	assert_int_equal(t->ops->recv_line(t, got, sizeof(got), &len, 200), -ETIMEDOUT);
	/* half a line then silence: an error, and the half is gone afterwards */
	card_write("{\"half\":");
	assert_int_equal(t->ops->recv_line(t, got, sizeof(got), &len, 2000), -ETIMEDOUT);
	card_write("{\"c\":3}\r\n");
	assert_int_equal(t->ops->recv_line(t, got, sizeof(got), &len, 2000), 0);
	assert_string_equal(got, "{\"c\":3}");
	/* over the cap */
	card_write("{\"long\":\"0123456789012345678901234567890123456789\"}\r\n");
	assert_int_equal(t->ops->recv_line(t, got, sizeof(got), &len, 2000), -EMSGSIZE);
}

static void test_reset(void **state)
{
	/* stale bytes from an aborted answer are drained; the card then answers the
	 * newline with a bare line end */
	card_write("{\"stale\":tru");
	/* answer each "\n" the host sends with "\r\n", in a child */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char b[16];
		for (int i = 0; i < 3; i++) {
			if (card_read(b, 1, 3000) != 1)
				_exit(1);
			if (write(master, "\r\n", 2) != 2)
				_exit(1);
		}
		_exit(0);
	}
	assert_int_equal(t->ops->reset(t), 0);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	tcflush(master, TCIOFLUSH);

	/* it echoed before: silence now means it is not there */
	tm.reset_tries = 2;
	assert_int_equal(t->ops->reset(t), -EIO);

	/* a card that keeps sending nonsense: -EIO after the tries */
	tm.reset_tries = 3;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (int i = 0; i < 200; i++) {
			if (write(master, "zz", 2) != 2)
				_exit(1);
			usleep(5000);
		}
		_exit(0);
	}
	assert_int_equal(t->ops->reset(t), -EIO);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void test_gone(void **state)
{
	close(master);
	master = -1;
	char got[32];
	size_t len;
	assert_int_equal(t->ops->recv_line(t, got, sizeof(got), &len, 1000), -ENODEV);
	t->ops->close(t);
	struct card_transport *g;
	assert_int_equal(card_transport_serial_new("/dev/ttyNOPE9", 9600, &tm, &card_clock_real, &g),
	                 0);
	assert_int_equal(g->ops->open(g), -ENODEV);
	card_transport_free(g);
	assert_int_equal(card_transport_serial_new("/dev/null", 12345, &tm, &card_clock_real, &g),
	                 -EINVAL);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_line_roundtrip), T(test_long_request_segmented), T(test_response_in_pieces),
		T(test_timeouts_and_cap), T(test_reset), T(test_gone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
