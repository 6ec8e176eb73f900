// Shared main of the Check test executables: runs the suite named by GS_SUITE.
#include <check.h>
#include <stdlib.h>

Suite *GS_SUITE(void);

int main(void)
{
    SRunner *sr = srunner_create(GS_SUITE());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
