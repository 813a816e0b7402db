# plugins/modbus: rules of this module (see the top Makefile.am)
