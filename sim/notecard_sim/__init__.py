"""notecard-sim: a Notecard simulator speaking the card's serial and serial-over-I2C protocols."""
VERSION = "0.1"
