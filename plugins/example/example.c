/* example plugin: being written (foundation, issue 2). */
#include "notegw/plugin.h"
