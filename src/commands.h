/* Control-socket commands of the core (see commands.c for their shapes). */
#ifndef NOTEGW_COMMANDS_H
#define NOTEGW_COMMANDS_H
struct control;
int commands_register(struct control *c);
#endif
