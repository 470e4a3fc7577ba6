"""The fast host DMA path (behaves like drivers/accel/qaic/qaic_data.c)."""
