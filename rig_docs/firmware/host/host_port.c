/* The host build is one thread: the synthetic converter runs inside the main
 * loop, so the sample ring needs no lock. */
#include "port.h"

void fw_port_lock(void) {}
void fw_port_unlock(void) {}
