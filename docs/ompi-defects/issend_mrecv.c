/*
 * Open MPI 4.1.4, pml cm + mtl ofi: a synchronous send received with
 * MPI_Mprobe + MPI_Mrecv never completes (the matched-receive path sends
 * no sync acknowledgement). Independent of the provider: it hangs with
 * FI_PROVIDER=srd, tcp and "udp;ofi_rxd" and passes over vader. mpi4py
 * receives objects this way, so its tests that issend/ssend objects are
 * excluded over srd (scripts/mpi4py-suite.sh).
 *
 *   mpicc issend_mrecv.c -o issend_mrecv
 *   timeout 30 mpirun -np 1 --mca pml cm --mca mtl ofi \
 *       --mca mtl_ofi_provider_exclude none -x FI_PROVIDER=tcp ./issend_mrecv
 *   -> prints "hang: the synchronous send never completed", exit 1
 */
#include <mpi.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    char s[10] = "x", r[10];
    MPI_Request req;
    MPI_Message msg;
    int done = 0;
    long spins = 0;

    MPI_Init(&argc, &argv);
    MPI_Issend(s, 10, MPI_CHAR, 0, 7, MPI_COMM_SELF, &req);
    MPI_Mprobe(0, 7, MPI_COMM_SELF, &msg, MPI_STATUS_IGNORE);
    MPI_Mrecv(r, 10, MPI_CHAR, &msg, MPI_STATUS_IGNORE);
    while (!done && spins++ < 5000000)
        MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    printf("%s\n", done ? "ok: the synchronous send completed"
                        : "hang: the synchronous send never completed");
    if (!done)
        MPI_Abort(MPI_COMM_SELF, 1);
    MPI_Finalize();
    return 0;
}
