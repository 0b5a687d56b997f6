/* placeholder: the server lands here */
int main (void) { return 0; }
