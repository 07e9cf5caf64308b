int srd_shim_placeholder;
